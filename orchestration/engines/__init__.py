"""The engines behind the lakehouse assets (the interface: orchestration/engine.py)."""
