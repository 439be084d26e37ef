"""The OAuth 2.0 authorization-server side: request validation, PKCE, client authentication."""
