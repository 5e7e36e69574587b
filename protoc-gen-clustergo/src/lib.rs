//! Code generation for clustergo services (filled in by the code-generation work).
