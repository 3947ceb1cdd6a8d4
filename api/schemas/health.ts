import { Type } from '@sinclair/typebox';
import { StringEnum } from './common';

export const Health = Type.Object({ status: Type.Literal('ok') });

const State = StringEnum(['up', 'down'] as const);
export const Readiness = Type.Object({
  status: StringEnum(['ready', 'not_ready'] as const),
  checks: Type.Object({ postgres: State, temporal: State }),
});
