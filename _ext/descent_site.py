"""Sphinx extension for Descent's website build.

It marks the build in the environment, which the chapter kernels started by myst-nb inherit,
so that ``optcore.widgets`` renders explorers as static panels: sliders on a static page would
have no kernel behind them and do nothing.
"""

import os

STATIC_SITE_ENV = "DESCENT_STATIC_SITE"


def setup(app):
    os.environ[STATIC_SITE_ENV] = "1"
    return {"parallel_read_safe": True, "parallel_write_safe": True}
