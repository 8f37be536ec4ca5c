"""The service catalog: services, triggers, service directories, git repositories, and the one Service validator."""
