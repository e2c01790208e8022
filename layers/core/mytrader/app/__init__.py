"""The composition root: settings parsed from the environment and the dependencies each function is built with."""
