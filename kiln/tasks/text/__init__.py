"""Text classification: labelled texts -> class probabilities, the tokenizer inside the model (kiln/tasks/text/task.py)."""
