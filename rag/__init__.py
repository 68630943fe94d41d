"""rag: retrieval-augmented answers with numbered citations, grounded in clinical sources."""

__version__ = "0.1.0"
