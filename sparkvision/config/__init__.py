"""Config: every run parameter declared once (``params``), the validated run config (``runconfig``)
and the command line every Spark job shares (``cli``)."""
