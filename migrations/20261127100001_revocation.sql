-- The API token a console ticket was issued through, if any: revoking that token closes the console opened
-- with the ticket, and a ticket of a revoked token can no longer be redeemed.
ALTER TABLE console_tokens ADD COLUMN api_token_id TEXT REFERENCES api_tokens (id);
