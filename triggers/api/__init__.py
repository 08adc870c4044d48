"""The REST API of triggers, deployments and deliveries: viewsets (views, deliveries) and serializers. Routed by
relayweb/urls.py (one DefaultRouter for the whole API)."""
