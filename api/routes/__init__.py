"""One APIRouter per surface of the API; `api.app.create_api` includes them."""
