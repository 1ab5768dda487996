"""sweettok: a reproducible implementation of the SweetTok compact semantic video tokenizer."""

__version__ = "0.1.0"
