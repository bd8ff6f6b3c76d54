"""Use cases. Know nothing of HTTP; take a ``Context`` and a ``Principal``, raise domain errors."""
