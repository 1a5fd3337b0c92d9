"""Adapters to the outside world: the load balancer (httpx), nodes (asyncssh), the database (aiomysql)."""
