"""The one error a request handler raises for a bad request."""


class ApiError(Exception):
    """A bad request: answered as `{"error": message}` with `status` (400, 401, 404, 413)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message
