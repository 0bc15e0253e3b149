"""Training examples built on :mod:`symconv.nn` and :mod:`symconv.optim`.

``symconv.train.digits``: a LeNet-5-style network on scikit-learn's bundled 8×8 handwritten
digits (needs the ``examples`` extra: scikit-learn, matplotlib, tqdm).
"""
