"""journeyrec: session-based recommenders for e-commerce customer journeys.

The package is layered so that each stage can be used on its own:
``data`` (canonical events -> prepared sequences), ``models`` (torch modules),
``evaluation`` (full-ranking metrics), ``export`` (bundle + FAISS index) and
``serving`` (the thin inference path). Importing ``journeyrec`` itself is cheap:
torch, Lightning and MLflow are only imported by the submodules that need them.
"""

import logging

# FAISS logs its CPU-feature probing at INFO on every import; it is noise for our users.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

__version__ = "0.1.0"
