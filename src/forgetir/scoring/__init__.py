"""Scoring restored images: PSNR/SSIM tables of models on test sets (:mod:`.evaluate`), and how
one whole image is restored, tiled or not, in which precision (:mod:`.inference`).
"""
