"""Serving images: request decoding (inputs), the KServe v2 / TF Serving / upload endpoints (protocols), the page."""
