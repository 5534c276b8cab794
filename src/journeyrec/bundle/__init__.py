"""Export: item vectors -> FAISS index, and the versioned bundle that serving loads."""
