// Placeholder translation unit for a library whose module has only headers.
