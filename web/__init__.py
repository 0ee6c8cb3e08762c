"""The bundled H5 page: templates and static files (a package so it ships inside installs and the zipapp)."""
