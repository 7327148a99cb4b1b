-- Failed password sign-ins, counted per account and per client address in
-- the database (not per process), so a deployment's replicas share one
-- count: five failures for an account within the window lock it for a
-- while, whichever replica each attempt reached.
CREATE TABLE sign_in_throttle (
    -- 'account:<email, lowercase>' or 'address:<client address>'
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    locked_until TIMESTAMPTZ
);
