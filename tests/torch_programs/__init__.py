"""Small programs in the style of popular PyTorch code, written for minires with only the import
changed (issue 14). ``tests/test_torch_programs.py`` runs them, and runs the very same source under
PyTorch (the imports switched back) to compare."""
