"""The REST API: thin routes (`hub.api.routes`) over services, with shared dependencies.

Build new routes on `hub.api.deps`: `CurrentPrincipal` for any logged-in caller,
`require(Role.OPERATOR)` (or the `OperatorPrincipal` / `AdminPrincipal` aliases)
for a minimum role, and `Principal.can_access_site` for site scope.
"""
