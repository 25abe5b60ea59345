"""`python -m stream.api`: the same as `textroute serve`, settings from TEXTROUTE_API_*."""

from stream.api.server import serve
from stream.api.settings import ApiSettings

if __name__ == "__main__":
    serve(ApiSettings())
