"""Running the services: states, restart policy, processes, output, health, reload."""
