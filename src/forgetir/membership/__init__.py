"""Membership inference on restoration models: the per-example attacks and their exact ROC
metrics (:mod:`.attack`), and the deletion-request scenarios they judge (:mod:`.scenarios`).
"""
