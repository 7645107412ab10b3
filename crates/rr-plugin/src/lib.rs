//! The plugin container: lifecycle, dependencies and shared services.
