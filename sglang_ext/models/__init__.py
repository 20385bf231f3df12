"""Small models built locally (no hub): the server's embedded default, test models."""
