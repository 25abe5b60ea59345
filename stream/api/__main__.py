"""`python -m stream.api`: the same as `textroute serve`, settings from TEXTROUTE_API_*."""

import sys

from pydantic import ValidationError

from schemas.errors import TextrouteError
from stream._pydantic import summarize_validation_error
from stream.api.server import serve
from stream.api.settings import ApiSettings

if __name__ == "__main__":
    # One clear line and exit 2, as `textroute serve` does, rather than a traceback.
    try:
        serve(ApiSettings())
    except ValidationError as exc:
        print(f"error: invalid API settings: {summarize_validation_error(exc)}", file=sys.stderr)
        sys.exit(2)
    except TextrouteError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
