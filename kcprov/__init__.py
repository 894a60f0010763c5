"""kcprov: declarative Keycloak provisioning for MCP servers."""

__version__ = "0.1.0"

# The Keycloak version kcprov pins by default: the newest keycloak-quarkus-dist
# that Maven Central serves. docker-compose.yml must name the same version
# (a test keeps them in step).
KEYCLOAK_VERSION = "26.7.3"
