"""User-facing errors: the message says what is wrong and what to do.

The page shows ``str(error)`` with ``st.error``; the CLI prints it as one line on stderr and exits 2.
"""


class UserError(ValueError):
    """Base of every error a user can cause with a bad file or value."""


class DataError(UserError):
    """An input dataset, image, archive or manifest is unusable."""


class ConfigError(UserError):
    """A configuration value is invalid; the message names the value and the valid choices."""
