"""The execution contract between the framework and its nodes: state, context, node base, run recorder."""
