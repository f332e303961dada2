"""Runtime code of fanflow: the Lambda handlers and the domain logic they share.

Everything in this package is shipped as one Lambda asset and must not import CDK.
Modules inside it import each other relatively so that the embedded runtime can load
each deployed function's copy under its own package name.
"""
