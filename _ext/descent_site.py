"""Sphinx extension for Descent's website build.

1. It marks the build in the environment, which the chapter kernels started by myst-nb
   inherit, so that ``optcore.widgets`` renders explorers as static panels: sliders on a
   static page would have no kernel behind them and do nothing.
2. It drops scripts registered twice. sphinx-thebe 0.3.1 registers its inline configuration
   on every ``env-before-read-docs`` event, which Jupyter Book fires more than once, and the
   second copy fails in the browser ("Identifier 'THEBE_JS_URL' has already been declared").
"""

import os

STATIC_SITE_ENV = "DESCENT_STATIC_SITE"


def drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    # The copies differ only in the file name of an inline script: None once, "" once.
    seen, unique = set(), []
    for script in scripts:
        key = (script.filename or None, script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    os.environ[STATIC_SITE_ENV] = "1"
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)  # after the others
    return {"parallel_read_safe": True, "parallel_write_safe": True}
