from tests.integration.conftest import cp  # noqa: F401 - the real control plane fixture
