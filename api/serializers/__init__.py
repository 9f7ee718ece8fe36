"""Input and output serializers, one module per area (api/serializers/<area>.py)."""
