"""Controllers: wire the document, the job runner and the model session to the views (views stay thin)."""
