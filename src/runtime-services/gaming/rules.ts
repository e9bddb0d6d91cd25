// Declarative gaming rules: XP per platform action, the level curve, and
// achievements (first time, counter threshold, daily streak). They come from
// configuration (GAMING_RULES as JSON); the defaults below are a family's.
import { z } from 'zod';

export const AchievementRuleSchema = z.discriminatedUnion('kind', [
  z.object({ id: z.string().regex(/^[a-z0-9-]{1,64}$/), name: z.string().min(1), kind: z.literal('first'), action: z.string().min(1), xp: z.number().int().min(0).default(0) }),
  z.object({ id: z.string().regex(/^[a-z0-9-]{1,64}$/), name: z.string().min(1), kind: z.literal('count'), action: z.string().min(1), threshold: z.number().int().min(1), xp: z.number().int().min(0).default(0) }),
  z.object({ id: z.string().regex(/^[a-z0-9-]{1,64}$/), name: z.string().min(1), kind: z.literal('streak'), action: z.string().min(1), days: z.number().int().min(2), xp: z.number().int().min(0).default(0) }),
]);
export type AchievementRule = z.infer<typeof AchievementRuleSchema>;

export const GamingRulesSchema = z.object({
  /** action → XP; actions not listed earn nothing (and count for nothing). */
  xp: z.record(z.number().int().min(0).max(1_000_000)),
  /** XP needed for level L (L ≥ 2) = round(base · (L − 1)^exponent); level 1 at 0 XP. */
  levels: z.object({ base: z.number().positive(), exponent: z.number().min(1).max(4), max: z.number().int().min(1).max(1000) }),
  achievements: z.array(AchievementRuleSchema).refine((a) => new Set(a.map((r) => r.id)).size === a.length, 'achievement ids must be unique'),
});
export type GamingRules = z.infer<typeof GamingRulesSchema>;

export const DEFAULT_RULES: GamingRules = {
  xp: { 'chat.message.send': 2, 'media.upload': 10, 'media.avatar.set': 5, 'chat.channel.create': 5 },
  levels: { base: 100, exponent: 1.5, max: 100 },
  achievements: [
    { id: 'first-message', name: 'First words', kind: 'first', action: 'chat.message.send', xp: 10 },
    { id: 'chatterbox', name: 'Chatterbox', kind: 'count', action: 'chat.message.send', threshold: 100, xp: 50 },
    { id: 'first-upload', name: 'Say cheese', kind: 'first', action: 'media.upload', xp: 10 },
    { id: 'photographer', name: 'Photographer', kind: 'count', action: 'media.upload', threshold: 25, xp: 50 },
    { id: 'week-streak', name: 'Seven days in a row', kind: 'streak', action: 'chat.message.send', days: 7, xp: 70 },
  ],
};

export function xpForLevel(level: number, curve: GamingRules['levels']): number {
  return level <= 1 ? 0 : Math.round(curve.base * (level - 1) ** curve.exponent);
}

export function levelFor(xp: number, curve: GamingRules['levels']): number {
  let level = 1;
  while (level < curve.max && xpForLevel(level + 1, curve) <= xp) level++;
  return level;
}
