"""The project's Prefect tasks and the plain functions under them."""

import os

# TensorFlow's C++ start-up lines (absl's "All log messages before absl::InitializeLog()",
# oneDNN's notice) on every command's and worker's stderr; its errors still show. Set before
# anything here imports TensorFlow; an operator's own value wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
