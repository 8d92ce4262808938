"""Small demo models we train ourselves, so every example workflow makes real pictures offline on CPU.

``scenes`` draws captioned pictures of coloured shapes (the training data), ``architectures`` holds the
diffusers / transformers configurations, ``train`` trains and exports them, ``evaluate`` measures the results.
Only ``torch`` is imported eagerly; diffusers, transformers and OpenCV are imported where they are needed.
"""
