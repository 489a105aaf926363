"""The one error type of recipe loading."""


class RecipeError(ValueError):
    """A recipe that cannot be used: the message names the file (or command line), the dotted key, and
    what is allowed there."""
