"""Local demo of the whole opsloop loop, and the real-server launchers it shares with the tests."""
