"""Sentiment classification of movie reviews and sentences (IMDB, SST-2, your own files)."""
