"""The Files and Batches API passthrough for openai- and azure-kind providers, scoped per tenant."""
