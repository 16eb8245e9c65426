/**
 * GET /api/v1/referrals/me: the caller's referral code (made on first ask), how many customers
 * signed up with it, and the referral credit it earned. Signup takes the code (api/auth.ts); the
 * reward is a step of the referred customer's subscription workflow.
 */
import type { Router } from 'express';
import { z } from 'zod';
import { referralCodeOf, referralStats } from '../db/referrals';
import type { AppDeps } from './deps';
import { currentUser } from './auth';
import { json, type ApiOperation } from './contract';
import { creditBalanceJsonSchema } from './credits';
import { apiRouter } from './route';

const referralJsonSchema = z
  .strictObject({
    code: z.string().meta({ description: 'What a new customer gives at signup (`referralCode`), in any case.' }),
    referredCount: z.int().min(0),
    creditEarned: z.array(creditBalanceJsonSchema).meta({ description: 'Referral credit granted so far, by currency.' }),
  })
  .meta({ id: 'Referral' });

export function referralRoutes(deps: AppDeps): Router {
  const { db } = deps;
  const { router, route } = apiRouter(deps);
  route(referralApi.me, async (req, res) => {
    const userId = currentUser(req).id;
    const code = await referralCodeOf(db, userId);
    res.json({ code, ...(await referralStats(db, userId)) });
  });
  return router;
}

export const referralApi = {
  me: {
    method: 'get',
    path: '/api/v1/referrals/me',
    summary: "The caller's referral code, how many signed up with it and the credit it earned",
    auth: 'user',
    responses: { 200: json('The referral', referralJsonSchema) },
  },
} satisfies Record<string, ApiOperation>;
