/** The Cedar policy set the end-to-end tests push (also the README's example). */
export const POLICY = `
@id("eng-may-delegate-acme")
permit(principal, action == Writ::Action::"delegate", resource)
when { principal.groups.contains("eng") && resource.resource like "repo://acme/*" };

@id("acme-agents-receive")
permit(principal, action == Writ::Action::"receive", resource)
when { principal.trustDomain == "example.org" && resource.resource like "repo://acme/*" };

@id("no-untrusted-agents")
forbid(principal, action == Writ::Action::"receive", resource)
when { principal.path like "/untrusted/*" };

@id("no-agents-for-contractors")
forbid(principal, action == Writ::Action::"receive", resource)
when { context.principal.groups.contains("contractors") };

@id("prod-deploys-need-approval") @escalate("production deploys need approval")
forbid(principal, action == Writ::Action::"delegate", resource)
when { resource.action == "deploy:prod" };
`;
