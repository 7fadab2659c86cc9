"""ONE DSL features for tests: the seeds' CreateAIClone verbatim, and two more valid features."""

from __future__ import annotations

from typing import Any

CREATE_AI_CLONE: dict[str, Any] = {
    "feature": "CreateAIClone",
    "input": {
        "creatorId": "Id<entities>",
        "videoUrls": "string[]",
    },
    "output": {
        "cloneId": "Id<entities>",
        "voiceId": "string",
    },
    "flow": [
        {
            "validate": {
                "creatorId": {"exists": True, "type": "creator"},
                "videoUrls": {"minLength": 3},
            },
            "onError": {"return": {"error": "InsufficientContent"}},
        },
        {
            "service": {
                "provider": "elevenlabs",
                "method": "cloneVoice",
                "params": {"samples": "$audioSamples"},
                "output": "voiceId",
                "retry": {"times": 3, "delay": "5s"},
            },
        },
        {
            "entity": {
                "type": "ai_clone",
                "name": "$creator.name + ' AI Clone'",
                "properties": {
                    "voiceId": "$voiceId",
                    "systemPrompt": "$personality.systemPrompt",
                    "temperature": 0.7,
                },
                "status": "active",
            },
            "output": "cloneId",
        },
        {
            "connect": {
                "from": "$input.creatorId",
                "to": "$cloneId",
                "type": "owns",
            },
        },
        {
            "event": {
                "entity": "$cloneId",
                "type": "clone_created",
                "actor": "$input.creatorId",
            },
        },
        {
            "return": {
                "cloneId": "$cloneId",
                "voiceId": "$voiceId",
            },
        },
    ],
}
"""``createAICloneDSL`` from the seeds (implementation examples, "Technical DSL"), verbatim."""

CREATE_AI_CLONE_CONTEXT: dict[str, str] = {"audioSamples": "string[]", "personality": "object"}
"""The two values CreateAIClone uses but does not produce; the caller supplies them at run time."""

LAUNCH_COURSE: dict[str, Any] = {
    "feature": "LaunchCourse",
    "input": {"creatorId": "Id<entities>", "title": "string", "price": "number?"},
    "output": {"courseId": "Id<entities>", "owned": "object[]"},
    "flow": [
        {
            "validate": {
                "creatorId": {"exists": True, "type": "creator"},
                "title": {"minLength": 3, "maxLength": 200},
                "price": {"min": 0},
            },
            "onError": {"return": {"error": "InvalidCourse"}},
        },
        {
            "atomic": [
                {
                    "entity": {
                        "type": "course",
                        "name": "$input.title",
                        "properties": {"price": "$input.price", "author": "$creator.name"},
                        "status": "draft",
                    },
                    "output": "courseId",
                },
                {"connect": {"from": "$input.creatorId", "to": "$courseId", "type": "authored"}},
                {"event": {"type": "course_created", "entity": "$courseId", "actor": "$input.creatorId"}},
            ],
            "onError": {"return": {"error": "CourseNotSaved"}},
        },
        {
            "query": {"connections": {"from": "$input.creatorId", "type": "owns", "limit": 50}},
            "output": "owned",
        },
        {"return": {"courseId": "$courseId", "owned": "$owned"}},
    ],
}
"""Creates a course, its authorship and its event all-or-nothing, then lists what the creator owns."""

CHAT_WITH_CLONE: dict[str, Any] = {
    "feature": "ChatWithClone",
    "input": {"fanId": "Id<entities>", "cloneId": "Id<entities>", "message": "string"},
    "output": {"reply": "string", "rewarded": "boolean"},
    "flow": [
        {
            "validate": {
                "fanId": {"exists": True, "type": "audience_member"},
                "cloneId": {"exists": True, "type": "ai_clone"},
                "message": {"minLength": 1, "maxLength": 2000},
            },
        },
        {
            "query": {"connections": {"from": "$input.fanId", "type": "holds_tokens", "limit": 1}},
            "output": "holdings",
        },
        {
            "if": {
                "condition": "$holdings",
                "then": [
                    {
                        "service": {
                            "provider": "openai",
                            "method": "chat",
                            "params": {
                                "system": "$clone.properties.systemPrompt",
                                "message": "$input.message",
                            },
                            "output": "reply",
                            "retry": {"times": 2, "delay": "500ms"},
                        },
                        "onError": {"return": {"error": "CloneUnavailable"}},
                    },
                    {
                        "entity": {
                            "type": "message",
                            "name": "'Chat with ' + $clone.name",
                            "properties": {"text": "$input.message", "reply": "$reply"},
                        },
                        "output": "messageId",
                    },
                    {"connect": {"from": "$input.fanId", "to": "$messageId", "type": "authored"}},
                    {
                        "event": {
                            "type": "tokens_earned",
                            "entity": "$input.fanId",
                            "actor": "$input.cloneId",
                            "metadata": {"amount": 10},
                        },
                    },
                    {"return": {"reply": "$reply", "rewarded": True}},
                ],
                "else": [
                    {"return": {"reply": "'Buy tokens to chat with ' + $clone.name", "rewarded": False}},
                ],
            },
        },
    ],
}
"""The seeds' plain-English "chat with my AI clone" feature: token holders get a reply and 10 tokens."""
