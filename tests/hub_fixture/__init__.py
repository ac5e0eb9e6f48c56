"""A Hugging Face Hub stand-in on 127.0.0.1 for the tests of the online path (issue 13)."""
