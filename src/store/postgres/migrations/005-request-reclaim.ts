/**
 * Migration 5: run requests left `claimed` by a scheduler that died or lost its connection are
 * claimed again once their claim is stale (claimRunRequests). NEVER edit once released (see
 * 001-initial.ts).
 *
 *  - run_requests_claimed: the claimed requests by claim time, so looking for stale claims reads
 *    only the few requests in flight, not every request ever made.
 */
export const migration005 = `
CREATE INDEX run_requests_claimed ON run_requests (claimed_at) WHERE state = 'claimed';
`;
