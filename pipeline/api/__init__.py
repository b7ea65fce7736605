"""Reference-API clients (httpx) for SiliconFlow and the APIs that speak its dialect."""
