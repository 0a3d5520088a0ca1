"""The SSH protocol plugin: OpenSSH clients to hoopd, hoopd to the target's sshd.

asyncssh does the SSH protocol on both legs; it runs on asyncio, which trio hosts
through trio-asyncio, and stays inside this package.
"""
