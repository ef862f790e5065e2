"""How results are drawn: the report's HTML + Markdown document model (:mod:`.document`) and its
plots and image grids (:mod:`.figures`). It sits below the checks, which render their own
results into a document.
"""
